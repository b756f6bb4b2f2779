"""Load MathJax on every page, not only on pages with math in their body.

The sidebar lists every page title, and some titles contain math (Exercise 5.2: $N^\\tau$); without
this, pages with no math of their own showed that title as raw TeX.
"""


def setup(app):
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
