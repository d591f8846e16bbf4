"""The policy table: one record per region's policy, read by every region node.

On a real broker the table's topic is log-compacted (Kafka keeps at least the latest
record of every key), every other topic is not."""

from __future__ import annotations

from kafka.admin import ConfigResource, ConfigResourceType

from clearsim.bus.kafka import KafkaBus
from clearsim.bus.topics import all_topics, policies_topic, region_topic


def cleanup_policy(bus: KafkaBus, topic: str) -> str:
    """The topic's cleanup.policy as the broker reports it (kafka-python 3 answers
    {resource type: {name: {key: entry}}}; only keys set on the topic are listed: a topic
    that sets none has the broker's default, "delete")."""
    answer = bus.admin().describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)])
    configs = next(iter(answer.values()))[topic]
    entry = configs.get("cleanup.policy")
    if entry is None:
        return "delete"
    return entry["value"] if isinstance(entry, dict) else entry


def test_the_policy_table_is_compacted_and_the_node_topics_are_not(kafka_bootstrap,
                                                                   topic_prefix):
    bus = KafkaBus(kafka_bootstrap)
    try:
        bus.ensure_topics(all_topics(topic_prefix, ["360400", "110000"]), 1)
        assert cleanup_policy(bus, policies_topic(topic_prefix)) == "compact"
        assert cleanup_policy(bus, region_topic(topic_prefix, "360400")) == "delete"
    finally:
        bus.close()
