namespace Peft.Core.Torch.Cuda;

/// <summary>
/// The scalars of one fused AdamW step (<see cref="FusedKernels.AdamWStep"/>), each as the float32 value torch's
/// CUDA kernel of the matching eager op computes with: <c>(float)</c> of the double the eager op passes.
/// </summary>
/// <param name="Decay">1 − lr·wd (p.mul_).</param>
/// <param name="LerpWeight">1 − β1 as stored in the parameters' dtype (lerp_'s weight tensor), then widened.</param>
/// <param name="Beta2">β2 (v.mul_).</param>
/// <param name="OneMinusBeta2">1 − β2 (addcmul_'s value).</param>
/// <param name="InvBc2Sqrt">1 / √(1 − β2^t), divided in float32 (div_ by a CPU scalar multiplies by its reciprocal).</param>
/// <param name="Eps">ε (add_).</param>
/// <param name="NegStepSize">−lr / (1 − β1^t) (addcdiv_'s value).</param>
/// <param name="HasDecay">False when weight decay is 0 (no p.mul_).</param>
internal readonly record struct AdamWScalars(float Decay, float LerpWeight, float Beta2, float OneMinusBeta2, float InvBc2Sqrt, float Eps,
    float NegStepSize, bool HasDecay)
{
    /// <summary>1 / √bc2 as torch's div_ by a CPU scalar computes it: the reciprocal of the float32 value, in float32.</summary>
    public static float Reciprocal(double bc2Sqrt) => 1.0f / (float)bc2Sqrt;
}
