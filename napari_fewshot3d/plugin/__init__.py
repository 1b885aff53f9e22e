"""The napari plugin: a dock widget, reader, writer and sample data (declared in ``napari.yaml``).

It converts layers to engine volumes and back and runs the engine in a worker thread; no segmentation logic
lives here."""
