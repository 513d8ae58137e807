"""The presets (``*.toml``), installed as the ``livedepth.configs`` package."""
