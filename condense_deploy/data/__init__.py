"""Data files that ship with the package: class-name lists (see ``condense_deploy.classnames``)."""
