// Apache Kafka's Java client (kafka-clients 4.x) against `streamlog serve`:
// its default producer (idempotent, acks=all) with zstd, a consumer group
// of two members that commits, and the commit read back by the admin
// client. Usage: java CheckJavaClient BOOTSTRAP; exits 1 on a failure.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

public class CheckJavaClient {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL java: " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        Properties a = new Properties();
        a.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(a)) {
            admin.createTopics(List.of(new NewTopic("java", 4, (short) 1))).all().get(30, TimeUnit.SECONDS);
            check(admin.listTopics().names().get().contains("java"), "the topic is listed");
        }

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "zstd");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < 400; i++) {
                producer.send(new ProducerRecord<>("java", "k" + (i % 13), "v" + i));
            }
            producer.flush();
        }
        System.out.println("PASS java: idempotent zstd producer (the default) sent 400 records");

        ConcurrentLinkedQueue<String> seen = new ConcurrentLinkedQueue<>();
        List<Set<Integer>> owned = Collections.synchronizedList(new ArrayList<>(List.of(new HashSet<>(), new HashSet<>())));
        CountDownLatch done = new CountDownLatch(2);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        for (int m = 0; m < 2; m++) {
            final int member = m;
            pool.submit(() -> {
                Properties c = new Properties();
                c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
                c.put(ConsumerConfig.GROUP_ID_CONFIG, "java-group");
                c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
                c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
                c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
                c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
                try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
                    consumer.subscribe(List.of("java"));
                    long deadline = System.currentTimeMillis() + 60_000;
                    while (seen.size() < 400 && System.currentTimeMillis() < deadline) {
                        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                            seen.add(r.value());
                        }
                        try {
                            consumer.commitSync();
                        } catch (org.apache.kafka.common.errors.RebalanceInProgressException | CommitFailedException e) {
                            // the next poll rejoins; its records are committed then
                        }
                        Set<Integer> mine = new HashSet<>();
                        for (TopicPartition tp : consumer.assignment()) mine.add(tp.partition());
                        owned.set(member, mine);
                    }
                    try {
                        consumer.commitSync();
                    } catch (org.apache.kafka.common.errors.RebalanceInProgressException | CommitFailedException e) {
                        // the other member's last rebalance; its partitions are committed by it
                    }
                } catch (Exception e) {
                    e.printStackTrace();
                } finally {
                    done.countDown();
                }
            });
        }
        check(done.await(90, TimeUnit.SECONDS), "both members finished");
        pool.shutdown();
        Set<String> values = new HashSet<>(seen);
        check(values.size() == 400, "every record consumed (got " + values.size() + " distinct)");
        System.out.println("PASS java: a group of two members consumed all 400 (owned " + owned + ")");

        try (Admin admin = Admin.create(a)) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets("java-group").partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            long total = 0;
            for (OffsetAndMetadata o : committed.values()) total += o.offset();
            check(total == 400, "committed offsets sum to 400 (got " + total + ": " + committed + ")");
            Collection<GroupListing> groups = admin.listGroups().all().get(30, TimeUnit.SECONDS);
            check(groups.stream().anyMatch(g -> g.groupId().equals("java-group")), "the group is listed");
        }
        System.out.println("PASS java: the commits are read back by the admin client");
    }
}
