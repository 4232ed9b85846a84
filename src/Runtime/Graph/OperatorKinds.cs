// This file is compiled into both the runtime and the generator (netstandard2.0): the manifest's operator
// kind names and which kinds keep state are one vocabulary for the manifest writer, the manifest reader, the
// lock-file checks, the restore checks and the CLI. Keep it free of APIs newer than netstandard2.0.

namespace PipelineDsl.Graph
{

/// <summary>The operator kinds as manifests, lock files and checkpoints spell them.</summary>
internal static class OperatorKinds
{
    public const string Source = "source";
    public const string Map = "map";
    public const string FlatMap = "flat-map";
    public const string Filter = "filter";
    public const string Reduce = "reduce";
    public const string UpdateState = "update-state";
    public const string Window = "window";
    public const string Union = "union";
    public const string Join = "join";
    public const string Sink = "sink";
    public const string ForEachBatch = "for-each-batch";
    public const string Watermark = "watermark";
    public const string EventTimeWindow = "event-time-window";
    public const string SessionWindow = "session-window";
    public const string StreamJoin = "stream-join";

    /// <summary>True for the kinds whose operators keep state across batches, and so in checkpoints.</summary>
    public static bool KeepsState(string kind) =>
        kind is UpdateState or Window or Watermark or EventTimeWindow or SessionWindow or StreamJoin;
}

}
