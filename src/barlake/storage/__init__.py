"""The Parquet files: file system, partition layout, day index, lock."""
