// KafkaJS 2.2.4 against `streamlog serve`: produce, consume in a group of
// two members with commits, and the commits read back with the admin
// client. Usage: node check.js BOOTSTRAP; exits 1 on a failure.
const { Kafka, logLevel } = require('kafkajs');

const bootstrap = process.argv[2];
const kafka = new Kafka({ clientId: 'kafkajs-check', brokers: [bootstrap], logLevel: logLevel.ERROR });

function fail(what) {
  console.log(`FAIL kafkajs: ${what}`);
  process.exit(1);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'js', numPartitions: 2 }] });
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < 10; i++) {
    await producer.send({
      topic: 'js',
      messages: Array.from({ length: 20 }, (_, j) => ({ key: `k${j % 5}`, value: `v${i * 20 + j}` })),
    });
  }
  await producer.disconnect();
  console.log('PASS kafkajs: 200 records produced');

  const seen = new Set();
  const members = [0, 1].map(() => kafka.consumer({ groupId: 'js-group', sessionTimeout: 10000 }));
  for (const c of members) {
    await c.connect();
    await c.subscribe({ topic: 'js', fromBeginning: true });
    await c.run({
      autoCommit: true,
      autoCommitInterval: 100,
      eachMessage: async ({ message }) => {
        seen.add(message.value.toString());
      },
    });
  }
  const deadline = Date.now() + 60000;
  while (seen.size < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (seen.size !== 200) fail(`consumed ${seen.size} distinct records, want 200`);
  console.log('PASS kafkajs: a group of two members consumed all 200');
  // Let the last auto-commit go out, then leave.
  await new Promise((r) => setTimeout(r, 500));
  for (const c of members) await c.disconnect();

  const offsets = await admin.fetchOffsets({ groupId: 'js-group', topics: ['js'] });
  const total = offsets[0].partitions.reduce((n, p) => n + Number(p.offset), 0);
  if (total !== 200) fail(`committed offsets sum to ${total}, want 200: ${JSON.stringify(offsets)}`);
  const groups = await admin.listGroups();
  if (!groups.groups.some((g) => g.groupId === 'js-group')) fail('the group is not listed');
  await admin.disconnect();
  console.log('PASS kafkajs: the commits are read back by the admin client');
}

main().catch((e) => fail(e.stack || e));
