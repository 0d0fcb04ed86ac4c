"""The lab's Slurm: Debian's slurmctld and munged on the ops side, slurmd on each lab host (see service.py)."""
