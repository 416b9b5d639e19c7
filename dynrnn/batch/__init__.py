"""dynrnn.batch: planned, not built yet -- mapping analyses over a zoo (in-process, local
processes or a Dask cluster), resumable through the zoo's stored results. Empty today."""
