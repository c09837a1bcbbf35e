"""The Voila dashboard of POS recommendations (notebooks/dashboard.ipynb calls `show_dashboard`).

`data`: pure pandas (load the cleansed stage, search, customer history, store best sellers, the
recommendation rows); `render`: HTML tables and charts; `app`: the ipywidgets app.
"""

from workbench.dashboard.app import Dashboard, show_dashboard

__all__ = ["Dashboard", "show_dashboard"]
