namespace Peft.Core.Tuners;

/// <summary>
/// A config that names its target layers with PEFT's <c>target_modules</c> / <c>exclude_modules</c> (IA3, bottleneck
/// adapters), so the tuners share one target rule, target description and freezing (<see cref="LayerInjectingTuner"/>).
/// </summary>
internal interface ITargetedConfig
{
    /// <summary>HF <c>target_modules</c> (resolved by <see cref="LayerInjectingTuner.PrepareConfig"/> before injection).</summary>
    TargetModules? TargetModules { get; }

    /// <summary>HF <c>exclude_modules</c>.</summary>
    TargetModules? ExcludeModules { get; }
}
