using System;

namespace PipelineDsl
{
    /// <summary>
    /// Marks a <c>partial</c> class, struct or record as a state contract: a type whose values cross
    /// a checkpoint. The generator emits a MessagePack formatter keyed by each member's
    /// <see cref="FieldAttribute"/> key, so members can be renamed, added and removed without
    /// stranding checkpoints.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, AllowMultiple = false, Inherited = false)]
    public sealed class StateContractAttribute : Attribute
    {
    }

    /// <summary>
    /// Gives a state-contract member its stable integer key (0 or more, unique within the type).
    /// The key, not the member name, identifies the field on the wire and in the schema fingerprint.
    /// Never reuse a removed member's key for a field of another type.
    /// </summary>
    /// <example><code>public partial record struct UserState([property: Field(0)] long Clicks);</code></example>
    [AttributeUsage(AttributeTargets.Property | AttributeTargets.Field | AttributeTargets.Parameter, AllowMultiple = false, Inherited = false)]
    public sealed class FieldAttribute : Attribute
    {
        /// <summary>Assigns the member's stable key.</summary>
        public FieldAttribute(int key) => Key = key;

        /// <summary>The stable key of the member.</summary>
        public int Key { get; }
    }
}
