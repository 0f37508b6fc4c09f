"""The workflow config: its JSON schema (the one definition of every setting, training settings
included) and the cross-key checks a schema cannot express."""

from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")
