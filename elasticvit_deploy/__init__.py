"""elasticvit-deploy: from an ElasticViT supernet to fast, verified models on phones."""

__version__ = "0.1.0"
