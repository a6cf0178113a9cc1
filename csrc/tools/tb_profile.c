/*
 * tb_profile: a qemu TCG plugin (user mode, plugin API version 1, as in Debian's qemu 7.2) that
 * records executed guest code between two markers, for benchmarks/arm_model.py.
 *
 * For every translation block it keeps the guest address, the bytes of each instruction and an
 * execution counter bumped by an inline add (no callback per execution, so emulation stays fast).
 * The guest marks the window to measure with an otherwise unused system call number:
 * syscall(MARK_SYSCALL, 1) snapshots every counter (start), syscall(MARK_SYSCALL, 2) writes, for
 * every block that ran since the start, its address, its executions in the window and its
 * instructions (hex bytes and qemu's disassembly) to the file given as `out=PATH`. Warm-up and
 * session creation run before the start marker and are not counted.
 *
 *   qemu-aarch64 -plugin libtb_profile.so,out=/tmp/blocks.txt ... python3 driver.py
 *
 * Output lines: "B <vaddr hex> <executions> <instructions>" then one "I <hex bytes> <disassembly>"
 * per instruction; a last line "E <blocks> <guest instructions in the window>".
 *
 * The plugin header is not packaged in Debian, so the few API functions used here are declared
 * below with their API-version-1 signatures.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the subset of qemu-plugin.h (API version 1) this plugin uses ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                              uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* The marker: a system call number no Linux architecture uses; the kernel (qemu) answers ENOSYS. */
#define MARK_SYSCALL 0x4d43
#define MARK_START 1
#define MARK_STOP 2

struct block {
  uint64_t vaddr;
  uint64_t count;       /* bumped inline on every execution */
  uint64_t at_start;    /* count at the start marker */
  uint32_t n_insns;
  char *text;           /* "I <hex> <disas>\n" per instruction */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct block **blocks;
static size_t n_blocks, cap_blocks;
static char *out_path;
static bool started, stopped;

static char *format_insn(const struct qemu_plugin_insn *insn) {
  const uint8_t *data = qemu_plugin_insn_data(insn);
  size_t size = qemu_plugin_insn_size(insn);
  char *disas = qemu_plugin_insn_disas(insn);
  size_t len = 4 + 2 * size + (disas ? strlen(disas) : 0) + 2;
  char *line = malloc(len);
  if (!line) abort();
  size_t at = (size_t)snprintf(line, len, "I ");
  for (size_t i = 0; i < size; ++i) at += (size_t)snprintf(line + at, len - at, "%02x", data[i]);
  /* qemu's disassembly is for reading only; arm_model.py disassembles the bytes with llvm-mc */
  for (char *c = disas; c && *c; ++c)
    if (*c == '\n' || *c == '\t') *c = ' ';
  snprintf(line + at, len - at, " %s\n", disas ? disas : "?");
  free(disas);
  return line;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  struct block *b = calloc(1, sizeof *b);
  if (!b) abort();
  b->vaddr = qemu_plugin_tb_vaddr(tb);
  b->n_insns = (uint32_t)qemu_plugin_tb_n_insns(tb);
  size_t total = 1, used = 0;
  char **lines = malloc(sizeof(char *) * (b->n_insns ? b->n_insns : 1));
  if (!lines) abort();
  for (uint32_t i = 0; i < b->n_insns; ++i) {
    lines[i] = format_insn(qemu_plugin_tb_get_insn(tb, i));
    total += strlen(lines[i]);
  }
  b->text = malloc(total);
  if (!b->text) abort();
  b->text[0] = '\0';
  for (uint32_t i = 0; i < b->n_insns; ++i) {
    size_t n = strlen(lines[i]);
    memcpy(b->text + used, lines[i], n + 1);
    used += n;
    free(lines[i]);
  }
  free(lines);
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->count, 1);
  pthread_mutex_lock(&lock);
  if (n_blocks == cap_blocks) {
    cap_blocks = cap_blocks ? 2 * cap_blocks : 65536;
    blocks = realloc(blocks, sizeof(*blocks) * cap_blocks);
    if (!blocks) abort();
  }
  blocks[n_blocks++] = b;
  pthread_mutex_unlock(&lock);
}

static void write_window(void) {
  FILE *f = fopen(out_path, "w");
  if (!f) {
    fprintf(stderr, "tb_profile: cannot write %s\n", out_path);
    return;
  }
  uint64_t insns = 0, ran = 0;
  for (size_t i = 0; i < n_blocks; ++i) {
    struct block *b = blocks[i];
    uint64_t executed = b->count - b->at_start;
    if (!executed) continue;
    fprintf(f, "B %" PRIx64 " %" PRIu64 " %u\n%s", b->vaddr, executed, b->n_insns, b->text);
    insns += executed * b->n_insns;
    ++ran;
  }
  fprintf(f, "E %" PRIu64 " %" PRIu64 "\n", ran, insns);
  fclose(f);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
  (void)id; (void)vcpu_index; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
  if (num != MARK_SYSCALL) return;
  pthread_mutex_lock(&lock);
  if (a1 == MARK_START && !started) {
    for (size_t i = 0; i < n_blocks; ++i) blocks[i]->at_start = blocks[i]->count;
    started = true;
  } else if (a1 == MARK_STOP && started && !stopped) {
    write_window();
    stopped = true;
  }
  pthread_mutex_unlock(&lock);
}

static void on_exit_(qemu_plugin_id_t id, void *userdata) {
  (void)id; (void)userdata;
  if (started && !stopped) fprintf(stderr, "tb_profile: the guest never sent the stop marker\n");
  if (!started) fprintf(stderr, "tb_profile: the guest never sent the start marker\n");
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; ++i)
    if (strncmp(argv[i], "out=", 4) == 0) out_path = strdup(argv[i] + 4);
  if (!out_path) {
    fprintf(stderr, "tb_profile: usage: -plugin libtb_profile.so,out=PATH\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
  qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
  return 0;
}
