using System;

namespace PipelineDsl
{
    /// <summary>
    /// Declares how state written by version <see cref="FromVersion"/> of an update-state operator becomes
    /// the state of version <see cref="FromVersion"/> + 1: <c>static TNext M(TPrevious state)</c> in the
    /// pipeline class. Keep the old state type (under any name, with its field keys) so its bytes still
    /// decode. Migrations chain: a checkpoint of version 1 restored by version 3 goes through the
    /// migrations from 1 and from 2.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class StateMigrationAttribute : Attribute
    {
        /// <summary>Declares a migration of the state of <paramref name="operatorId"/>.</summary>
        public StateMigrationAttribute(string operatorId) => OperatorId = operatorId;

        /// <summary>The id of the update-state operator whose state this migrates.</summary>
        public string OperatorId { get; }

        /// <summary>The version whose state this method takes (1 or more, below the operator's current version).</summary>
        public int FromVersion { get; set; }
    }

    /// <summary>
    /// Declares on a pipeline class that an operator (a stateful stage or a source) was removed on purpose:
    /// a checkpoint that still holds its state or positions is restored without them. Without it, restoring
    /// such a checkpoint is refused, so that no state is dropped by accident.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
    public sealed class RetiredOperatorAttribute : Attribute
    {
        /// <summary>Retires the operator <paramref name="operatorId"/>.</summary>
        public RetiredOperatorAttribute(string operatorId) => OperatorId = operatorId;

        /// <summary>The id of the removed operator.</summary>
        public string OperatorId { get; }
    }

    /// <summary>
    /// Declares on a pipeline class that state written by version <see cref="FromVersion"/> of an operator is
    /// not migrated but dropped: the operator starts empty when it restores such a checkpoint.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
    public sealed class DiscardStateAttribute : Attribute
    {
        /// <summary>Discards the state of <paramref name="operatorId"/> written by <see cref="FromVersion"/>.</summary>
        public DiscardStateAttribute(string operatorId) => OperatorId = operatorId;

        /// <summary>The id of the stateful operator.</summary>
        public string OperatorId { get; }

        /// <summary>The version whose state is dropped.</summary>
        public int FromVersion { get; set; }
    }
}
