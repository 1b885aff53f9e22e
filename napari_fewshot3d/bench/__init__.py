"""`fewshot3d bench`: the painting protocol, the runs, their scores and the report (GUIDE §5)."""
