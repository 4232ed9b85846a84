namespace PipelineDsl.Generator.Model
{
    // Every model here is a plain value: strings, numbers, enums and EquatableArray. No ISymbol,
    // SyntaxNode, Location or Compilation may appear (a test enforces it), so that the incremental
    // pipeline can compare models by value and cache everything downstream of an unchanged one.

    /// <summary>A type declaration that encloses generated code (the type itself or a containing type).</summary>
    internal sealed record TypeDeclarationSpec(string Keyword, string Name);

    /// <summary>Where generated code goes: a namespace and the chain of enclosing type declarations.</summary>
    internal sealed record TargetTypeSpec(
        string? Namespace,
        EquatableArray<TypeDeclarationSpec> ContainingTypes,
        TypeDeclarationSpec Type,
        string FullyQualifiedName)
    {
        /// <summary>A deterministic, file-name-safe prefix for hint names.</summary>
        public string HintPrefix
        {
            get
            {
                var name = FullyQualifiedName.StartsWith("global::", System.StringComparison.Ordinal)
                    ? FullyQualifiedName.Substring("global::".Length)
                    : FullyQualifiedName;
                var chars = name.ToCharArray();
                for (int i = 0; i < chars.Length; i++)
                {
                    if (!(char.IsLetterOrDigit(chars[i]) || chars[i] == '.' || chars[i] == '_')) chars[i] = '_';
                }

                return new string(chars);
            }
        }
    }

    internal enum ShapeKind
    {
        Primitive,
        Enum,
        Nullable,
        Array,
        List,
        Dictionary,
        Contract,
    }

    /// <summary>
    /// How a type crosses a checkpoint. <see cref="Schema"/> is its canonical schema (field keys and
    /// types, never names); <see cref="Formatter"/> names the built-in formatter of a primitive.
    /// </summary>
    internal sealed record TypeShapeSpec(
        ShapeKind Kind,
        string TypeName,
        string Schema,
        string? Formatter,
        EquatableArray<TypeShapeSpec> Arguments);

    /// <summary>How a state-contract member is assigned when a value is read back.</summary>
    internal enum FieldAssignment
    {
        /// <summary>Set after construction, and only when present in the data, so that a declared initializer survives for fields an older checkpoint lacks.</summary>
        Settable,
        /// <summary>An init-only member: set in the object initializer (default when absent).</summary>
        InitOnly,
        /// <summary>Passed to the chosen constructor (default when absent).</summary>
        ConstructorParameter,
    }

    internal sealed record FieldSpec(
        int Key,
        string MemberName,
        TypeShapeSpec Shape,
        FieldAssignment Assignment,
        int ConstructorPosition);

    internal sealed record ContractSpec(
        TargetTypeSpec Target,
        bool IsValueType,
        EquatableArray<FieldSpec> Fields,
        int ConstructorParameterCount,
        string Schema,
        string Fingerprint);

    internal enum OperatorKindSpec
    {
        Source,
        Map,
        FlatMap,
        Filter,
        Reduce,
        UpdateState,
        Window,
        Union,
        Join,
        Sink,
        ForEachBatch,
        Watermark,
        EventTimeWindow,
        SessionWindow,
        StreamJoin,
    }

    /// <summary>The event-time settings of a watermark, event-time window, session window or stream join.</summary>
    internal sealed record EventTimeSpec(
        string? TimeMember,
        string? EndTimeMember,
        string? RightTimeMember,
        long SizeMs,
        long SlideMs,
        long GapMs,
        long MaxOutOfOrdernessMs,
        long LowerBoundMs,
        long UpperBoundMs);

    /// <summary>A stateful operator's schema as recorded in the manifest.</summary>
    internal sealed record StateSchemaSpec(string Fingerprint, string KeySchema, string ValueSchema, EquatableArray<StateFieldSpec> Fields);

    internal sealed record StateFieldSpec(int Key, string Name, string Schema);

    /// <summary>
    /// One operator. Type names come twice: <c>*Type</c> is the global::-qualified C# spelling used in
    /// code, <c>*TypeDisplay</c> the stable spelling recorded in the manifest.
    /// </summary>
    internal sealed record OperatorSpec(
        string Id,
        int Version,
        OperatorKindSpec Kind,
        EquatableArray<string> Inputs,
        string MemberName,
        string? DeclaredAccessibility,
        string? InputType,
        string? InputTypeDisplay,
        string? RightType,
        string? RightTypeDisplay,
        string? OutputType,
        string? OutputTypeDisplay,
        string? KeyType,
        string? KeyTypeDisplay,
        string? KeyMember,
        string? RightKeyMember,
        string? StateType,
        string? StateTypeDisplay,
        TypeShapeSpec? KeyShape,
        TypeShapeSpec? StateShape,
        StateSchemaSpec? StateSchema,
        int IdleTimeoutBatches,
        string? OnTimeoutMethod,
        int LengthBatches,
        int SlideBatches,
        bool ReturnsTask,
        EquatableArray<MigrationSpec> Migrations,
        EquatableArray<int> DiscardsStateFrom,
        EventTimeSpec? EventTime = null,
        TypeShapeSpec? RightShape = null,
        bool TakesBatchTime = false);

    /// <summary>A declared migration of an update-state operator's state from one version to the next.</summary>
    internal sealed record MigrationSpec(int FromVersion, string MethodName, TypeShapeSpec InputShape);

    internal sealed record PipelineSpec(
        TargetTypeSpec Target,
        string PipelineId,
        EquatableArray<OperatorSpec> Operators,
        EquatableArray<string> Retired,
        bool HasErrors);
}
