"""MongoDB adapter: sessions and generation records, with GridFS for images and large JSON."""

from adapters.mongo.repository import MongoExperimentRepository

__all__ = ["MongoExperimentRepository"]
