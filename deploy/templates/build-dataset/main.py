"""Flex Template entry of `s2mos build-dataset` (FLEX_TEMPLATE_PYTHON_PY_FILE): the launcher runs this file
with every template parameter as `--NAME=VALUE` and the Beam options of the launch environment;
they go to the CLI unchanged, so a template run is exactly `s2mos build-dataset …`."""
import sys

from pipelines import cli

if __name__ == "__main__":
    sys.exit(cli.main(["build-dataset", *sys.argv[1:]]))
