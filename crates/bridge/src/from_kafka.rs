pub struct MirrorFromKafka;
pub struct FromKafkaReport;
