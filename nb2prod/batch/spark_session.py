"""The Spark session of ``nb2prod score --engine spark``: Java checked, this interpreter on the
executors, quiet (log level WARN, no UI, no progress bars), loopback for a local master."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from nb2prod.errors import SparkError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BATCH_ROWS = 10_000  # rows per Arrow batch sent to a Python worker
JAVA_HINT = "install Java 17 (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOG4J = "rootLogger.level = warn\nrootLogger.appenderRef.stderr.ref = console\n" + (
    "appender.console.type = Console\nappender.console.name = console\n"
    "appender.console.target = SYSTEM_ERR\nappender.console.layout.type = PatternLayout\n"
    "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n"
    # "Unable to load native-hadoop library": true everywhere pip installs Spark, and harmless
    "logger.native.name = org.apache.hadoop.util.NativeCodeLoader\nlogger.native.level = error\n"
)


def java_version() -> int:
    """The major version of the java Spark will start (JAVA_HOME's, else PATH's).

    Raises:
        SparkError: no java, or one older than 17 (Spark 4 needs 17).
    """
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).is_file():
        raise SparkError(f"The Spark engine needs Java and none was found: {JAVA_HINT}.")
    done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    major = int(found.group(1)) if found else 0
    major = int(found.group(2)) if major == 1 and found and found.group(2) else major
    if major < 17:
        raise SparkError(f"The Spark engine needs Java 17 or later, not {major}: {JAVA_HINT}.")
    return major


def loopback(master: str) -> bool:
    """Whether the driver can bind to 127.0.0.1: local mode, or a master on this machine."""
    if master.startswith("local"):
        return True
    host = re.sub(r"^\w+://", "", master).split(",")[0].rsplit(":", 1)[0].strip("[]")
    return host in LOOPBACK


def reachable(master: str, timeout: float = 5.0) -> None:
    """A ``spark://`` master answers on its port (Spark itself retries for a minute, loudly).

    Raises:
        SparkError: none of its hosts accepts a connection.
    """
    import socket

    for where in master.removeprefix("spark://").split(",") if "://" in master else []:
        host, _, port = where.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError):
            continue
    if master.startswith("spark://"):
        raise SparkError(f"Cannot reach the Spark master {master}: is it running?")


def spark_conf(master: str, batch_rows: int, log4j: Path | None = None) -> dict[str, str]:
    """The session's settings: this interpreter on the executors, quiet, no UI."""
    conf = {
        "spark.master": master,
        "spark.app.name": "nb2prod score",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(batch_rows),
        "spark.sql.shuffle.partitions": "8",  # the shuffles here are a few rows per split
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.driver.memory": os.environ.get("NB2PROD_SPARK_DRIVER_MEMORY", "2g"),
    }
    if log4j is not None:
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={log4j.as_uri()}"
    if loopback(master):
        conf["spark.driver.host"] = conf["spark.driver.bindAddress"] = "127.0.0.1"
    return conf


@contextmanager
def session(master: str | None = None, batch_rows: int = BATCH_ROWS) -> Iterator[SparkSession]:
    """A Spark session on ``master`` (``local[*]``), stopped at the end; one already active in
    this process is used as it is, and left running.

    Raises:
        SparkError: no usable Java, or Spark does not start.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkError(
            "The Spark engine needs pyspark, which is not installed: pip install 'nb2prod[spark]'."
        ) from exc

    active = SparkSession.getActiveSession()
    if active is not None:
        if master is not None and active.sparkContext.master != master:
            raise SparkError(
                f"A Spark session on {active.sparkContext.master} is already running here, "
                f"not on {master}."
            )
        active.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        yield active
        return
    master = master or "local[*]"
    java_version()
    reachable(master)
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if loopback(master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="nb2prod-spark-") as tmp:
        log4j = Path(tmp) / "log4j2.properties"
        log4j.write_text(LOG4J, encoding="utf-8")
        builder = SparkSession.builder
        for key, value in spark_conf(master, batch_rows, log4j).items():
            builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()
        except Exception as exc:
            raise SparkError(f"Spark did not start on {master}: {first_line(exc)}.") from exc
        spark.sparkContext.setLogLevel("WARN")
        try:
            yield spark
        finally:
            spark.stop()


def first_line(exc: BaseException) -> str:
    """The line of a Java or Python error a person needs (its last ``...Error:`` line)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^\w+(Error|Exception):", line)]
    return (errors[-1] if errors else lines[0] if lines else type(exc).__name__).rstrip(".")
