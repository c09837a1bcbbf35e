"""Implementation of the cleansing stage; the public entry points are in `workbench.cleanse`."""
