"""Published encoders imported from local files: timm/zoobot checkpoints and Keras weights files.

    result = run_import_encoder(ImportEncoderConfig.resolve("cpu", source="models--mwalmsley--..."))

Every supported timm architecture has a Keras twin (`convnext`, `resnet`) whose layers are named
after timm's modules (`stages.1.blocks.0.conv_dw`), so a checkpoint's tensors are copied by name
(`torch_weights`). Checkpoints are read from disk only (`checkpoint`): nothing is downloaded.
"""
