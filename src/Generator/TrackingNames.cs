namespace PipelineDsl.Generator
{
    /// <summary>Names of the incremental steps, so that tests can assert what was cached.</summary>
    internal static class TrackingNames
    {
        public const string PipelineParse = nameof(PipelineParse);
        public const string PipelineSpecs = nameof(PipelineSpecs);
        public const string PipelineDiagnostics = nameof(PipelineDiagnostics);
        public const string PipelineIds = nameof(PipelineIds);
        public const string ContractParse = nameof(ContractParse);
        public const string ContractSpecs = nameof(ContractSpecs);
        public const string ContractDiagnostics = nameof(ContractDiagnostics);
        public const string OrphanOperators = nameof(OrphanOperators);
        public const string PipelineLocations = nameof(PipelineLocations);
        public const string LockFile = nameof(LockFile);
    }
}
