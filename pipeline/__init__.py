"""digitform: batch ICR of handwritten digits on scanned forms.

Stages (see ``pipeline/types.py`` for the data passed between them)::

    io.read_pages -> align.align_page -> boxes.find_fields -> segment.segment_cell
        -> classify.predictor.Predictor -> assemble.assemble_form -> writer.write_results

``pipeline.run.process_batch`` chains them.
"""

__version__ = "0.1.0"
