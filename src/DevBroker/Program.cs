using PipelineDsl.Kafka.Testing;
using System.CommandLine;

// pipelinedsl-dev-broker [--brokers N] [--topic NAME:PARTITIONS]...
// Prints "bootstrap.servers=…", then takes commands on stdin (topic, down, up, quit). See KafkaDevBroker.
var root = DevBrokerCommand.Create(new RootCommand(
    "A Kafka development broker (librdkafka's mock cluster) on loopback. Prints bootstrap.servers=..., then takes commands on standard input: "
    + "topic NAME PARTITIONS, down BROKER, up BROKER, quit."));
return CommandLineProgram.Run((RootCommand)root, args);
