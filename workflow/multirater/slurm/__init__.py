"""SLURM pre-flight: before snakemake submits anything, compare what each SLURM job will ask for
(CPUs, memory, GPUs, time) with the nodes of the partitions it goes to (`sinfo`). A request that no
node can meet would wait in the queue forever, with snakemake saying nothing.

nodes.py reads `sinfo`; requests.py says what sbatch will be asked for a job, as the executor plugin
builds it; preflight.py compares the two and words the one message that stops the run. The workflow
calls it from an `onstart:` handler (workflow/rules/resources.smk) when the executor is slurm."""
