"""`oodbench sweep`: a grid of independent (suite, model, seed) jobs, locally, on Ray or on Slurm."""

from __future__ import annotations

import time

import click

from oodbench.cli.app import cli
from oodbench.cli.options import (
    CACHE_DIR_OPTION,
    CONVENTION_OPTION,
    DATA_DIR_OPTION,
    DEVICE_OPTION,
    EVAL_BATCH_OPTION,
    LIMIT_OPTION,
    PARAM_OPTION,
    RESULTS_DIR_OPTION,
    SEEDS_OPTION,
    OneLineChoice,
    apply_options,
    beta_option,
    detectors_option,
    epochs_option,
    gan_warmup_option,
    lr_option,
    parse_params,
    parse_seeds,
    recipe_option,
    suite_names,
)
from oodbench.errors import UserInputError


@cli.command("sweep")
@click.option(
    "--in",
    "-i",
    "suites",
    multiple=True,
    type=OneLineChoice(suite_names, metavar="SUITE"),
    help="Suite(s) (see `oodbench list suites`); repeat for several. Default: mnist (embedded).",
)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    metavar="SOURCE",
    help="Model source(s): cross_entropy, confidence, joint. Default: all three.",
)
@detectors_option(
    "Detector(s) as in `oodbench run`: names, entry-point plug-ins, package.module:Class, "
    "path/to/file.py:Class, pytorch-ood:NAME, or the shorthands joint/confidence/baseline. "
    "Default: all built-in."
)
@apply_options(SEEDS_OPTION, PARAM_OPTION)
@recipe_option("Training recipe (default: each suite's; see `oodbench list recipes`).")
@epochs_option()
@beta_option("Override beta (confidence and joint models).")
@lr_option("Override the learning rate.")
@gan_warmup_option("Override the GAN warm-up (joint).")
@apply_options(LIMIT_OPTION, EVAL_BATCH_OPTION, CONVENTION_OPTION)
@apply_options(DEVICE_OPTION, DATA_DIR_OPTION, CACHE_DIR_OPTION, RESULTS_DIR_OPTION)
@click.option(
    "--executor",
    type=OneLineChoice(("local", "ray", "slurm")),
    default="local",
    show_default=True,
    help="local: processes on this machine; ray: a Ray cluster; slurm: a Slurm job array (submitit).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="local: jobs at once (1 = one after another in this process).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads (and CPUs asked for) per job. Default: local, the CPUs here / --workers; "
    "ray and slurm, 1 (Ray packs one job per CPU).",
)
@click.option(
    "--address", default=None, help="ray: the cluster to join ('auto' or HOST:PORT); else start one."
)
@click.option("--partition", default=None, help="slurm: the partition.")
@click.option("--time", "time_limit", default=None, help="slurm: time limit per job, e.g. 90 or 2:00:00.")
@click.option("--gpus-per-job", type=click.IntRange(min=0), default=None, help="slurm: GPUs per job.")
@click.option("--dry-run", is_flag=True, help="List the jobs and whether each is done; run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print only failed jobs and the summary.")
@click.pass_context
def sweep_command(
    ctx: click.Context,
    suites,
    models,
    detectors,
    seeds,
    params,
    recipe,
    epochs,
    beta,
    lr,
    gan_warmup_epochs,
    limit,
    batch_size,
    convention,
    device,
    data_dir,
    cache_dir,
    results_dir,
    executor,
    workers,
    threads,
    address,
    partition,
    time_limit,
    gpus_per_job,
    dry_run,
    quiet,
) -> None:
    """Run a grid of independent jobs, one per (suite, model, seed); finished jobs are skipped.

    Each job trains its model unless cached (an interrupted one resumes from its last epoch),
    scores every detector on every OOD set, and writes its rows to <results>/rows/<job>.jsonl.
    `oodbench report --results <results>` reads them all.
    """
    from oodbench.options import RunOptions
    from oodbench.sweep import check_executor, expand_jobs, parse_time, run_sweep
    from oodbench.sweep.plan import check_executor_options, remove_stale_files, sweep_runtime

    check_executor_options(
        executor,
        workers,
        address=address,
        partition=partition,
        time_limit=time_limit,
        gpus_per_job=gpus_per_job,
    )
    if convention == "openood":
        raise UserInputError(
            "oodbench sweep does not take --convention openood yet; use `oodbench run --convention openood`."
        )
    time_min = parse_time(time_limit) if time_limit is not None else None
    runtime = sweep_runtime(
        executor,
        device=device,
        workers=workers,
        threads=threads,
        results_dir=results_dir,
        cache_dir=cache_dir,
        check_folders=not dry_run,
    )
    results, torch_threads = runtime.results_dir, runtime.torch_threads
    options = RunOptions(
        models=models,
        detectors=detectors,
        params=parse_params(params),
        seeds=parse_seeds(seeds) if seeds is not None else None,
        recipe=recipe,
        train_overrides={"epochs": epochs, "beta": beta, "lr": lr, "gan_warmup_epochs": gan_warmup_epochs},
        limit=limit,
        legacy=convention == "legacy",
        batch_size=batch_size,
        device=runtime.device,
        results_dir=results,
        cache_dir=cache_dir,
        data_dir=data_dir,
    )
    jobs = expand_jobs(list(suites) or ["mnist"], options=options, torch_threads=torch_threads)
    if dry_run:
        states = [job.state() for job in jobs]
        for job, state in zip(jobs, states, strict=True):
            why = f" (redo: shard {state})" if state.startswith("damaged") else ""
            click.echo(f"{'done' if state == 'done' else 'to run':<7} {job.describe()}{why}")
        n_done = states.count("done")
        click.echo(f"{len(jobs)} job(s): {n_done} done, {len(jobs) - n_done} to run. Results: {results}")
        return
    check_executor(executor)
    remove_stale_files(runtime)
    where = f"{workers} worker(s), " if executor == "local" else ""
    if not quiet:
        click.echo(f"{len(jobs)} job(s) on {executor} ({where}{torch_threads} torch thread(s) per job)")

    def show(outcome) -> None:
        if quiet and outcome.status != "failed":
            return
        detail = f"{outcome.n_rows} rows, {outcome.seconds:.1f} s" if outcome.status == "done" else ""
        click.echo(f"{outcome.status:<7} {outcome.job_id}  {outcome.error or detail}".rstrip())

    started = time.perf_counter()
    outcomes = run_sweep(
        jobs,
        executor=executor,
        workers=workers,
        address=address,
        partition=partition,
        time_min=time_min,
        gpus_per_job=gpus_per_job,
        on_result=show,
    )
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    click.echo(
        f"{counts['done']} done, {counts['skipped']} skipped (already done), {counts['failed']} failed "
        f"in {time.perf_counter() - started:.1f} s. Rows: {results / 'rows'}; "
        f"tables: oodbench report --results {results}"
    )
    from oodbench.report.html import try_write_report

    page = try_write_report(results, convention=convention)
    if page is not None:
        click.echo(f"report: {page}")
    if counts["failed"]:
        click.echo("Re-run the same command to retry the failed jobs (training resumes).", err=True)
        ctx.exit(1)
