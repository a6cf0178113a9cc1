"""Run the condense-deploy CLI from a source checkout: ``python cli.py ...``."""

from condense_deploy.cli import main

if __name__ == "__main__":
    main()
