# Cross-compiling the native kernels for aarch64 Linux on another machine:
#   cmake -S csrc -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=csrc/cmake/aarch64-linux-gnu.cmake
# (scripts/build-kernels.sh --arch aarch64 does this). The compiler defaults to
# aarch64-linux-gnu-g++ (override with -DCMAKE_CXX_COMPILER); the test driver and bench are linked
# statically and run under qemu-aarch64-static (ctest uses it when it is installed).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
if(NOT CMAKE_CXX_COMPILER)
  set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CD_STATIC_TESTS ON CACHE BOOL "link the test driver and the bench statically (for qemu-user)" FORCE)
find_program(CD_QEMU_AARCH64 qemu-aarch64-static)
if(CD_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${CD_QEMU_AARCH64}")
endif()
