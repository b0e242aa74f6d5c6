"""Publishing to Kafka: the one module that imports `kafka` (kafka_client), the topics, the envelope of a
record, and the relay that publishes the event store to the events topic in Kafka transactions."""
