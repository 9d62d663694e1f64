"""The Jupyter server skin: routes under ``/nb2prod/`` and the build jobs behind them."""
