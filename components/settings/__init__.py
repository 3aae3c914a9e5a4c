"""Stack configuration, names and pins: the bottom layer, imported by everything else."""
