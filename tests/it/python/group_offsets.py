"""A third-party Kafka client (kafka-python 3.x) for the consumer-group tests: it reads a
group's committed offsets the way Kafka's tools do, and commits offsets as another consumer
would.

    group_offsets.py offsets BROKERS GROUP TOPIC
        prints {"partition": offset, ...} once (partitions without an offset left out)
    group_offsets.py watch BROKERS GROUP TOPIC
        prints such a line every 200 ms until killed
    group_offsets.py commit BROKERS GROUP TOPIC PARTITION=OFFSET [PARTITION=OFFSET ...]
        commits the offsets with a consumer that is assigned the partitions (not subscribed),
        which is a standalone commit, and prints "committed"
"""

import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata


def committed(admin, group, topic):
    offsets = admin.list_group_offsets({group: None}).get(group, {})
    return {
        str(partition.partition): meta.offset
        for partition, meta in offsets.items()
        if partition.topic == topic and meta.offset >= 0
    }


def main(argv):
    if len(argv) < 5:
        sys.exit(__doc__)
    command, brokers, group, topic = argv[1:5]
    if command in ("offsets", "watch"):
        admin = KafkaAdminClient(bootstrap_servers=brokers, client_id="group-offsets-test")
        while True:
            print(json.dumps(committed(admin, group, topic), sort_keys=True), flush=True)
            if command == "offsets":
                return
            time.sleep(0.2)
    if command == "commit":
        offsets = {}
        for pair in argv[5:]:
            partition, offset = pair.split("=")
            offsets[TopicPartition(topic, int(partition))] = OffsetAndMetadata(int(offset), "", -1)
        consumer = KafkaConsumer(
            bootstrap_servers=brokers, group_id=group, enable_auto_commit=False
        )
        consumer.assign(list(offsets))
        consumer.commit(offsets)
        consumer.close()
        print("committed", flush=True)
        return
    sys.exit(f"unknown command {command!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
