"""Data layer: raw CT + clinical tables -> patient-split Parquet shards -> torch batches."""
