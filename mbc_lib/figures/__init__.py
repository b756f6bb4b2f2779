"""Drawing and table formatting for the chapters — the only matplotlib users besides the widgets.

One module per experiment module of :mod:`mbc_lib.experiments`: the experiments measure and return
data; these functions turn that data into figures and tables. Nothing in the library imports this
package; the chapters do.
"""
