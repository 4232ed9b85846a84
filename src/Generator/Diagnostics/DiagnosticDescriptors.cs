using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace PipelineDsl.Generator.Diagnostics
{
    /// <summary>
    /// Every diagnostic PipelineDsl reports. IDs are never renumbered: PDSL0xx usage, PDSL1xx graph shape,
    /// PDSL2xx stability and checkpoint compatibility. Each message says how to fix the problem.
    /// </summary>
    internal static class DiagnosticDescriptors
    {
        private const string Usage = "PipelineDsl.Usage";
        private const string Graph = "PipelineDsl.Graph";

        public static readonly DiagnosticDescriptor GeneratorFailure = Error("PDSL000", Usage,
            "PipelineDsl generator failed",
            "The PipelineDsl generator failed on '{0}': {1}. This is a bug in PipelineDsl; report it with this message. Until it is fixed, simplify the construct named here.");

        public static readonly DiagnosticDescriptor NotPartial = Error("PDSL001", Usage,
            "Pipeline class must be partial",
            "'{0}' must be declared 'partial' so that PipelineDsl can generate its wiring: add the 'partial' modifier to '{0}'");

        public static readonly DiagnosticDescriptor MissingId = Error("PDSL002", Usage,
            "Missing id",
            "The {0} '{1}' has no id: give it a stable id, for example [{2}(\"my-id\")]");

        public static readonly DiagnosticDescriptor MalformedId = Error("PDSL003", Usage,
            "Malformed id",
            "The id \"{0}\" is malformed: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit");

        public static readonly DiagnosticDescriptor InvalidVersion = Error("PDSL004", Usage,
            "Invalid version",
            "The version of '{0}' is {1}: versions start at 1");

        public static readonly DiagnosticDescriptor WrongShape = Error("PDSL005", Usage,
            "Stage method has the wrong shape",
            "The {0} method '{1}' has the wrong shape: it must be {2}");

        public static readonly DiagnosticDescriptor WrongDeclaration = Error("PDSL006", Usage,
            "Declaration has the wrong shape",
            "'{0}' must be declared '{1}' without a body: the generator implements it");

        public static readonly DiagnosticDescriptor MissingKey = Error("PDSL007", Usage,
            "Keyed stage without a key",
            "The keyed stage '{0}' has no {1}: set {1} = nameof({2}.Member) to the property or field that holds the key");

        public static readonly DiagnosticDescriptor UnknownKeyMember = Error("PDSL008", Usage,
            "Key names no member",
            "The key '{1}' of '{0}' is not a readable instance property or field of '{2}': name one, for example with nameof({2}.Member)");

        public static readonly DiagnosticDescriptor NotCheckpointable = Error("PDSL009", Usage,
            "Type cannot be checkpointed",
            "'{1}', the {2} type of stateful operator '{0}', cannot be checkpointed: mark it [StateContract] and give its members [Field(n)] keys, or use a primitive, string, enum, DateTime, TimeSpan or Guid");

        public static readonly DiagnosticDescriptor ContractNotPartial = Error("PDSL010", Usage,
            "State contract must be partial",
            "The state contract '{0}' must be declared 'partial' so that PipelineDsl can generate its formatter: add the 'partial' modifier");

        public static readonly DiagnosticDescriptor DuplicateFieldKey = Error("PDSL011", Usage,
            "Duplicate field key",
            "Field key {1} is used by both '{2}' and '{3}' in '{0}': give every field its own key");

        public static readonly DiagnosticDescriptor NegativeFieldKey = Error("PDSL012", Usage,
            "Negative field key",
            "The field key of '{0}.{1}' is {2}: keys are 0 or more");

        public static readonly DiagnosticDescriptor UnsupportedFieldType = Error("PDSL013", Usage,
            "Field type cannot be checkpointed",
            "The field '{0}.{1}' has type '{2}', which cannot be checkpointed: use a primitive, string, byte[], enum, DateTime, DateTimeOffset, TimeSpan, Guid, a state contract, a Nullable of those, or an array, List or Dictionary of them");

        public static readonly DiagnosticDescriptor NotConstructible = Error("PDSL014", Usage,
            "State contract cannot be constructed",
            "The state contract '{0}' cannot be rebuilt from a checkpoint: {1}. Give it a parameterless constructor and settable (or init) fields, or a constructor whose parameters match the fields by name.");

        public static readonly DiagnosticDescriptor UnkeyedMember = Warning("PDSL015", Usage,
            "State contract member has no field key",
            "'{0}.{1}' has no [Field(n)] key, so its value is not checkpointed and is lost on recovery: give it a key, or make it a computed property");

        public static readonly DiagnosticDescriptor GenericPipeline = Error("PDSL016", Usage,
            "Pipeline class must not be generic",
            "'{0}' is generic: a pipeline class (and the types that contain it) must not have type parameters");

        public static readonly DiagnosticDescriptor MultipleOperatorAttributes = Error("PDSL017", Usage,
            "More than one operator attribute",
            "'{0}' has more than one PipelineDsl operator attribute: declare each operator on its own method");

        public static readonly DiagnosticDescriptor OutsidePipeline = Error("PDSL018", Usage,
            "Operator outside a pipeline",
            "'{0}' declares an operator but '{1}' has no [Pipeline] attribute: add [Pipeline(\"my-pipeline\")] to '{1}'");

        public static readonly DiagnosticDescriptor InvalidWindow = Error("PDSL019", Usage,
            "Invalid window",
            "The window '{0}' has LengthBatches = {1} and SlideBatches = {2}: the slide must be 1 or more and the length a positive multiple of the slide");

        public static readonly DiagnosticDescriptor InvalidIdleTimeout = Error("PDSL020", Usage,
            "Invalid idle timeout",
            "IdleTimeoutBatches of '{0}' is {1}: use 0 (never time out) or more batches");

        public static readonly DiagnosticDescriptor InvalidOnTimeout = Error("PDSL021", Usage,
            "Invalid timeout method",
            "OnTimeout of '{0}' names '{1}', which is not a method 'static {2} {1}({3} key, {4} state)' of the pipeline class{5}");

        public static readonly DiagnosticDescriptor DuplicatePipelineId = Error("PDSL022", Usage,
            "Duplicate pipeline id",
            "The pipeline id \"{0}\" is declared by both '{1}' and '{2}': give each pipeline its own id");

        public static readonly DiagnosticDescriptor MigrationTargetUnknown = Error("PDSL023", Usage,
            "Migration or discard names no update-state operator",
            "{0} names \"{1}\", which is not {2} of pipeline '{3}'{4}");

        public static readonly DiagnosticDescriptor InvalidFromVersion = Error("PDSL024", Usage,
            "Invalid FromVersion",
            "FromVersion of {0} for '{1}' is {2}: it must be an older version of the operator, from 1 to {3} (its current Version is {4})");

        public static readonly DiagnosticDescriptor MigrationShape = Error("PDSL025", Usage,
            "Migration method has the wrong shape",
            "The migration method '{0}' has the wrong shape: it must be 'static TNext {0}(TPrevious state)', and TPrevious must be a state contract or a primitive, so that the old bytes can be read");

        public static readonly DiagnosticDescriptor BrokenMigrationChain = Error("PDSL026", Usage,
            "Broken migration chain",
            "The migrations of '{0}' do not chain: {1}");

        public static readonly DiagnosticDescriptor DuplicateMigration = Error("PDSL027", Usage,
            "Duplicate migration",
            "'{0}' has two migrations from version {1}: keep one");

        public static readonly DiagnosticDescriptor RetiredOperatorExists = Error("PDSL028", Usage,
            "Retired operator still exists",
            "'{0}' is declared retired but the pipeline still has an operator with that id: remove the [RetiredOperator] or the operator");

        public static readonly DiagnosticDescriptor InvalidTimeMember = Error("PDSL029", Usage,
            "Invalid event-time member",
            "{0} of '{1}' must name a long property or field of '{2}' holding Unix milliseconds{3}");

        public static readonly DiagnosticDescriptor InvalidEventTimeWindow = Error("PDSL030", Usage,
            "Invalid event-time window",
            "The window '{0}' {1}");

        public static readonly DiagnosticDescriptor InvalidJoinTimes = Error("PDSL031", Usage,
            "Invalid stream-join time bounds",
            "The stream join '{0}' {1}");

        public static readonly DiagnosticDescriptor DuplicateOperatorId = Error("PDSL100", Graph,
            "Duplicate operator id",
            "The id \"{0}\" is used by more than one element of pipeline '{1}': give each its own id");

        public static readonly DiagnosticDescriptor UnknownInput = Error("PDSL101", Graph,
            "Input names no element",
            "'{0}' reads from \"{1}\", which is not an element of pipeline '{2}'{3}");

        public static readonly DiagnosticDescriptor InputTypeMismatch = Error("PDSL102", Graph,
            "Input type differs from upstream output",
            "'{0}' takes '{1}' but its input \"{2}\" produces '{3}': change the parameter type or read from another element");

        public static readonly DiagnosticDescriptor Cycle = Error("PDSL103", Graph,
            "Cycle",
            "Pipeline '{0}' has a cycle: {1}. A pipeline must be acyclic: make one of these read from a source or an earlier stage.");

        public static readonly DiagnosticDescriptor MissingInput = Error("PDSL104", Graph,
            "Element without input",
            "'{0}' has no input: set {1} = \"id\" to the id of a source or stage");

        public static readonly DiagnosticDescriptor UnconsumedOutput = Warning("PDSL105", Graph,
            "Output reaches no sink",
            "The output of '{0}' reaches no sink: add a [Sink] or [ForEachBatch] that reads from it, or remove it");

        public static readonly DiagnosticDescriptor ReadsFromSink = Error("PDSL106", Graph,
            "Input is a sink",
            "'{0}' reads from \"{1}\", which is a sink: sinks produce no records, read from the sink's input instead");

        public static readonly DiagnosticDescriptor JoinKeyMismatch = Error("PDSL107", Graph,
            "Join keys of different types",
            "The join '{0}' has a left key of type '{1}' and a right key of type '{2}': both keys must have the same type");

        public static readonly DiagnosticDescriptor UnionArity = Error("PDSL108", Graph,
            "Union needs two or more inputs",
            "The union '{0}' has {1} input(s): list two or more element ids");

        public static readonly DiagnosticDescriptor NoSource = Warning("PDSL109", Graph,
            "Pipeline without source",
            "Pipeline '{0}' declares no [Source]: it will never receive a record");

        public static readonly DiagnosticDescriptor NoWatermark = Error("PDSL110", Graph,
            "Event-time operator without a watermark",
            "'{0}' works in event time, but its input from source '{1}' passes no [Watermark] stage: declare one between '{1}' and '{0}' so that it knows when windows are complete");

        private const string Compatibility = "PipelineDsl.Compatibility";

        public static readonly DiagnosticDescriptor StatefulOperatorRemoved = Error("PDSL200", Compatibility,
            "Removing a stateful operator strands its state",
            "The locked pipeline '{1}' has the stateful operator '{0}', which this build removes: restoring an existing checkpoint would fail. Declare [RetiredOperator(\"{0}\")] on the pipeline class to drop its state on purpose, or bring the operator back.");

        public static readonly DiagnosticDescriptor IncompatibleStateChange = Error("PDSL201", Compatibility,
            "Incompatible state change without a version bump",
            "The state of '{0}' changed incompatibly at version {1} ({2}): checkpoints written by the locked build could not be read. Set Version = {3} and add a [StateMigration(\"{0}\", FromVersion = {1})] method, or declare [DiscardState(\"{0}\", FromVersion = {1})].");

        public static readonly DiagnosticDescriptor VersionBumpWithoutMigration = Error("PDSL202", Compatibility,
            "Version bumped without a migration",
            "'{0}' moves from version {1} to {2} with no migration from version {1}: its checkpointed state would be stranded. Add a [StateMigration(\"{0}\", FromVersion = {1})] method, or declare [DiscardState(\"{0}\", FromVersion = {1})] to start it empty on purpose.");

        public static readonly DiagnosticDescriptor SourceRemoved = Error("PDSL203", Compatibility,
            "Removing a source strands its positions",
            "The locked pipeline '{1}' has the source '{0}', which this build removes: checkpoints hold its positions. Declare [RetiredOperator(\"{0}\")] on the pipeline class to drop them on purpose, or bring the source back.");

        public static readonly DiagnosticDescriptor KeyTypeChanged = Error("PDSL204", Compatibility,
            "Key type of a stateful operator changed",
            "The key of '{0}' changed from {1} to {2}: keyed state cannot be migrated to another key type. Give the operator a new id and declare [RetiredOperator(\"{0}\")], or bump its Version and declare [DiscardState].");

        public static readonly DiagnosticDescriptor VersionLowered = Error("PDSL205", Compatibility,
            "Version lowered",
            "'{0}' is locked at version {1} but this build declares version {2}: versions only go up. Restore Version = {1} or higher.");

        public static readonly DiagnosticDescriptor OperatorKindChanged = Error("PDSL206", Compatibility,
            "Operator kind changed under the same id",
            "'{0}' was a '{1}' in the locked build and is now a '{2}': its checkpointed data would be misread. Give the new operator a new id and declare [RetiredOperator(\"{0}\")].");

        public static readonly DiagnosticDescriptor MigrationCannotReadLockedState = Error("PDSL207", Compatibility,
            "Migration cannot read the locked state",
            "The migration of '{0}' from version {1} ('{2}') takes a type that cannot read the state the locked build wrote ({3}): keep the old state type's field keys and types.");

        public static readonly DiagnosticDescriptor LockFileUnreadable = Warning("PDSL208", Compatibility,
            "Lock file unreadable",
            "The lock file '{0}' cannot be read ({1}), so checkpoint compatibility is not checked: regenerate it with 'pipelinedsl lock'");

        public static readonly DiagnosticDescriptor StatePropertyChanged = Error("PDSL209", Compatibility,
            "A property that shapes checkpointed state changed without a version bump",
            "'{0}': {1}. Checkpoints of the locked build would restore into the wrong windows or join bounds without a word. Set Version = {2} and declare [DiscardState(\"{0}\", FromVersion = {3})] to start its state empty, or give the operator a new id and declare [RetiredOperator(\"{0}\")].");

        public static readonly DiagnosticDescriptor StateRekeyed = Error("PDSL210", Compatibility,
            "Keyed state re-keyed by another member",
            "'{0}': {1}. Keyed state cannot be migrated to another key: set Version = {2} and declare [DiscardState(\"{0}\", FromVersion = {3})], or give the operator a new id and declare [RetiredOperator(\"{0}\")].");

        private static readonly Dictionary<string, DiagnosticDescriptor> s_byId = typeof(DiagnosticDescriptors)
            .GetFields()
            .Where(f => f.FieldType == typeof(DiagnosticDescriptor))
            .Select(f => (DiagnosticDescriptor)f.GetValue(null)!)
            .ToDictionary(d => d.Id);

        public static IEnumerable<DiagnosticDescriptor> All => s_byId.Values.OrderBy(d => d.Id);

        public static DiagnosticDescriptor ById(string id) => s_byId[id];

        private static DiagnosticDescriptor Error(string id, string category, string title, string message) =>
            new(id, title, message, category, DiagnosticSeverity.Error, isEnabledByDefault: true, helpLinkUri: HelpLink(id));

        private static DiagnosticDescriptor Warning(string id, string category, string title, string message) =>
            new(id, title, message, category, DiagnosticSeverity.Warning, isEnabledByDefault: true, helpLinkUri: HelpLink(id));

        private static string HelpLink(string id) => "README.md#" + id.ToLowerInvariant();
    }
}
