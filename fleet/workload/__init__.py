"""Workload managers (schedulers): drain a node before a disruptive fix, resume it after, say if it is in use.

`base.WorkloadManager` is the interface the watch loop and the reimage in-use probe use; `slurm.Slurm`
is the first implementation, `base.NoScheduler` the one for sites without a scheduler.
"""
