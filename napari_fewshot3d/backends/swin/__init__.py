"""The Swin-UNETR path: the network and its schedules, weight loading, sparse-slice fine-tuning and
Volume Fusion (VolF) self-supervised pretraining. The `swin-unetr` backend and `fewshot3d pretrain` use these;
everything here needs MONAI (the `swin` extra) and is imported only by those who choose it."""
