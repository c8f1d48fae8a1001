"""The reconciler: observe the host and the array, plan (a pure function), act, report."""
