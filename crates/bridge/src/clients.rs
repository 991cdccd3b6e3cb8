pub trait Produce {}
pub trait Consume {}
pub struct ConsumedRecord;
pub struct KafkaConsumer;
pub struct KafkaProducer;
