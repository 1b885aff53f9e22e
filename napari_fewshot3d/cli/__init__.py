"""The `fewshot3d` command: segment, apply (one volume or a cohort), demo, bench, pretrain."""
