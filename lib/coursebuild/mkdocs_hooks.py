"""MkDocs hook (see ``hooks:`` in mkdocs.yml): put the installed convlens version in the
footer, so the site says which library computed its figures."""

import importlib.metadata


def on_config(config):
    try:
        version = importlib.metadata.version("convlens")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    config["copyright"] = f"convlens {version}"
    return config
