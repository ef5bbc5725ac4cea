"""Demo and scale data for the gallery (``manage.py seed_demo``), in four parts:

* ``vocabulary``: the BI vocabulary titles, descriptions, tags and bios are built from, and the helpers both
  loaders share (deterministic embed links, tags by slug);
* ``gallery``: the demo, small, believable and idempotent (:func:`~workbooks.demo.gallery.seed_gallery`);
* ``bulk``: the bulk loader for scale data (:class:`~workbooks.demo.bulk.BulkLoader`, COPY on PostgreSQL);
* ``images``: the chart thumbnails of demo workbooks, drawn with Pillow.
"""
