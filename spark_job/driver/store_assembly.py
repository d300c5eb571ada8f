"""features/ of a run with a features store, made from the store's files.

The store files whose every row the run wants are copied as they are, the others' wanted rows rewritten
through Spark; which file holds what comes from one scan of the store's identity columns (holdings), made
after this run's append, on the same listing of the store's files as the rows are then read from. A file
that mixes inputs' rows (those `compact` writes, or a store shared by Training and Test runs that inferred
both at once) is rewritten, never copied: correct, ~1 s more per 8,000 of its rows on a 2-vCPU machine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_job.contract.errors import JobFailedError
from spark_job.driver.featurize import FEATURES_DIR, is_image, label_of, with_label, write_features
from spark_job.driver.listing import Inputs, listing_of
from spark_job.driver.plan import RunPlan
from spark_job.driver.session import sql_conf
from spark_job.driver.storage import join
from spark_job.driver.store import FILE_SCHEMA, IDENTITY, FeaturesStore, escape_glob

log = logging.getLogger(__name__)

Identity = tuple[str, int, int]  # path, length, modification time in ms, as a stored row holds it


def same_file(listed: tuple[int, int] | None, length: int, ms: int) -> bool:
    """Whether a stored row's identity is this listed file (listed: its (length, ms), None: not listed).

    Compared to the second: the listing's times come from the file index (an S3 LIST) and the stored ones
    from binaryFile's file status (an S3 HEAD), and some stores give milliseconds in one and whole seconds
    in the other. S3's own times are whole seconds; a file rewritten with the same length within the same
    second of its previous version would be taken for it.
    """
    return listed is not None and listed[0] == length and listed[1] // 1000 == ms // 1000


def listed_identities(inputs: Inputs) -> dict[str, tuple[int, int]]:
    """path -> (length, modification ms) of every listed image: from the listing itself, or else a scan."""
    if inputs.identities is not None:
        return inputs.identities
    rows = (
        inputs.files.where(is_image(F.col("path")))
        .select("path", "length", F.unix_millis("modificationTime").alias("ms"))
        .collect()
    )
    return {row["path"]: (int(row["length"]), int(row["ms"])) for row in rows}


@dataclass(frozen=True)
class Holdings:
    """What the store's files hold of the listed images: one scan of the store's identity and label columns
    (no features read), aggregated per file on the executors, collected here, matched with the listing."""

    files: dict[Identity, list[str]]  # each listed identity the store holds -> the files holding it, sorted
    relabelled: frozenset[str]  # files with a listed row whose label this input's folders spell otherwise
    rows_per_file: dict[str, int]  # every file of the store -> its rows

    def chosen(self) -> dict[Identity, str]:
        """The file whose row of each identity features/ takes: the first by name. Two rows of one identity
        hold the same features (same key, same file): two runs inferred the same new photo at once, or a
        retried task's first attempt had committed."""
        return {identity: names[0] for identity, names in self.files.items()}


def holdings(stored: DataFrame, inputs: Inputs, listed: dict[str, tuple[int, int]]) -> Holdings:
    """stored: the store's rows (FeaturesStore.rows(): its files as listed when it was made). Only rows under
    the input folder come back to the driver, so the store may hold many more (other inputs) at little cost.
    """
    in_input = F.col("path").startswith(inputs.qualified.rstrip("/") + "/")
    tagged = stored.select(*IDENTITY, "label").withColumn("_file", F.input_file_name())
    relabel = ~F.col("label").eqNullSafe(label_of(inputs.qualified))
    held_row = F.struct(
        "path", "length", F.unix_millis("modification_time").alias("ms"), relabel.alias("relabelled")
    )
    per_file = (
        tagged.groupBy("_file")
        .agg(F.count(F.lit(1)).alias("rows"), F.collect_list(F.when(in_input, held_row)).alias("held"))
        .collect()
    )
    files: dict[Identity, list[str]] = {}
    relabelled: set[str] = set()
    for entry in per_file:
        for row in entry["held"]:
            if not same_file(listed.get(row["path"]), row["length"], row["ms"]):
                continue  # deleted, or changed since: not this run's
            files.setdefault((row["path"], row["length"], row["ms"]), []).append(entry["_file"])
            if row["relabelled"]:
                relabelled.add(entry["_file"])
    # Two stored versions of one path both taken for the listed file (rewritten within the same second,
    # same length): the newer one only, so that features/ holds one row per path.
    newest: dict[str, Identity] = {}
    for identity in files:
        if identity[0] not in newest or identity[2] > newest[identity[0]][2]:
            newest[identity[0]] = identity
    return Holdings(
        {identity: sorted(files[identity]) for identity in newest.values()},
        frozenset(relabelled),
        {entry["_file"]: int(entry["rows"]) for entry in per_file},
    )


@dataclass(frozen=True)
class Assembly:
    """How features/ is made from the store's files: copied whole, or their wanted rows rewritten."""

    copied: dict[str, int]  # store files copied into features/ as they are -> their rows
    rewritten: dict[str, list[Identity]]  # other store files holding wanted rows -> those rows' identities

    @property
    def copied_rows(self) -> int:
        return sum(self.copied.values())


def plan_assembly(held: Holdings) -> Assembly:
    """A store file is copied as it is when features/ wants every row in it: each is a listed identity,
    that file's row of it is the one kept, and its label is the one this input gives. Any other file
    holding a wanted row has those rows rewritten. (A task writes each identity once, so a file's
    rows are distinct identities.)"""
    wanted: dict[str, list[Identity]] = {}
    for identity, name in held.chosen().items():
        wanted.setdefault(name, []).append(identity)
    copied = {
        name: len(rows)
        for name, rows in wanted.items()
        if len(rows) == held.rows_per_file.get(name) and name not in held.relabelled
    }
    return Assembly(copied, {name: rows for name, rows in wanted.items() if name not in copied})


def assemble_features(
    spark: SparkSession,
    plan: RunPlan,
    inputs: Inputs,
    store: FeaturesStore,
    listed: dict[str, tuple[int, int]],
) -> int:
    """features/: the store's rows of exactly the listed identities, one per identity, labelled as this
    run's input folders say; returns its rows.

    Columns: path, length, modification_time (the identity), label, features. Whole store files whose
    rows are all wanted (the usual case: the previous runs' appends and this one's) are copied into
    features/ as they are, with no Spark job reading or writing their features (~1 s of a 2-core machine
    per 8,000 rows, measured 2026-12-01); the others' wanted rows are rewritten through Spark. The
    holdings are looked up now (this run's appends, and any other run's since the lookup, are in them), on
    the same listing of the store's files as the rows are read from: a file another run commits between
    the two changes neither.
    """
    stored = store.rows()
    held = holdings(stored, inputs, listed)
    assembly = plan_assembly(held)
    log.info(
        "features/ from the store: %d files copied (%d rows), %d files' rows rewritten",
        len(assembly.copied),
        assembly.copied_rows,
        len(assembly.rewritten),
    )
    n_rewritten = 0
    if assembly.rewritten:
        n_rewritten = _rewrite_rows(spark, plan, inputs, assembly)
    elif not assembly.copied:  # nothing to copy or rewrite: features/ still gets its schema
        write_features(spark.createDataFrame([], FILE_SCHEMA), plan.output)
    store.storage.copy_into(sorted(assembly.copied), join(plan.output, FEATURES_DIR))
    return n_rewritten + assembly.copied_rows


def _rewrite_rows(spark: SparkSession, plan: RunPlan, inputs: Inputs, assembly: Assembly) -> int:
    """Write into features/ the wanted rows of the store files that are not copied (each identity's row in
    the file chosen for it). Returns the rows written, which must be those planned."""
    expected = sum(len(rows) for rows in assembly.rewritten.values())
    # Which row of which file to keep, as a DataFrame through Arrow: no per-row Python and no literal of
    # every identity in the plan (after `store compact` every wanted row may be rewritten).
    keep = pd.DataFrame(
        [(*identity, name) for name, identities in assembly.rewritten.items() for identity in identities],
        columns=["path", "length", "ms", "_file"],
    )
    with sql_conf(spark, "spark.sql.execution.arrow.pyspark.enabled", "true"):
        keep_frame = spark.createDataFrame(keep, "path string, length long, ms long, _file string")
    # Only those files are read (their names, as input_file_name() spells them, are URLs).
    paths = [escape_glob(unquote(name)) for name in sorted(assembly.rewritten)]
    with listing_of(spark, sorted(assembly.rewritten)):
        files = spark.read.schema(FILE_SCHEMA).parquet(*paths)
    rows = (
        files.withColumn("_file", F.input_file_name())
        .withColumn("ms", F.unix_millis("modification_time"))
        .join(F.broadcast(keep_frame), ["path", "length", "ms", "_file"], "left_semi")
    )
    columns = FILE_SCHEMA.fieldNames()
    written = write_features(with_label(rows, inputs.qualified).select(*columns), plan.output)
    if written != expected:
        raise JobFailedError(
            f"features/ from the store: {written} rows rewritten from {len(assembly.rewritten)} store files, "
            f"{expected} expected (was the store changed during the run? `store compact` runs alone)"
        )
    return written
