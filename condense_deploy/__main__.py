"""``python -m condense_deploy``: the same CLI as the ``condense-deploy`` script."""

from condense_deploy.cli import main

if __name__ == "__main__":
    main()
