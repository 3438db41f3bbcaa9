using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// A frozen linear layer with a 4-bit weight (bnb <c>Linear4bit</c> with <c>Params4bit</c>): the packed codes
/// <c>weight</c> uint8 [ceil(out·in / 2), 1] plus its <see cref="QuantState"/>, dequantised on the fly into
/// <see cref="ComputeDtype"/> on every forward; the bias stays in full precision. State-dict keys follow bnb's
/// serialised layout: <c>weight</c>, <c>bias</c>, <c>weight.absmax</c>, <c>weight.quant_map</c>,
/// <c>weight.nested_absmax</c>, <c>weight.nested_quant_map</c>, <c>weight.quant_state.bitsandbytes__nf4|fp4</c>
/// (a uint8 tensor holding the JSON of the non-tensor fields). <c>to(device)</c> moves everything; a dtype cast
/// throws (the packed data has no float dtype).
/// </summary>
public sealed class Linear4bit : nn.Module<Tensor, Tensor>, IQuantizedLinear
{
    /// <summary>Packed 4-bit codes, uint8 [ceil(out·in / 2), 1], requires_grad = false (bnb <c>weight</c>).</summary>
    public Parameter weight;
    /// <summary>Bias [out] or null (bnb <c>bias</c>).</summary>
    public Parameter? bias;

    private Tensor _stateJson = null!;

    /// <summary>
    /// Quantises <paramref name="weightToQuantize"/> [out, in] (float32/16/bf16; not kept) into a new layer.
    /// <paramref name="biasToKeep"/> [out] is copied. HF: <c>bnb.nn.Linear4bit</c> + <c>Params4bit(...).to(device)</c>.
    /// </summary>
    public Linear4bit(Tensor weightToQuantize, Tensor? biasToKeep, FourBitFormat format, ScalarType computeDtype,
        int blocksize = 64, bool doubleQuant = false)
        : this(Quantized(weightToQuantize, format, blocksize, doubleQuant), biasToKeep, computeDtype)
    {
    }

    /// <summary>Builds the layer from already packed codes and their state (takes ownership of both).</summary>
    public Linear4bit((Tensor Packed, QuantState State) quantized, Tensor? biasToKeep, ScalarType computeDtype) : base(nameof(Linear4bit))
    {
        var (packed, state) = quantized;
        if (state.Shape.Length != 2)
            throw new ArgumentException($"Linear4bit needs a 2-D weight, got shape [{string.Join(", ", state.Shape)}].", nameof(quantized));
        State = state;
        ComputeDtype = computeDtype;
        weight = new Parameter(packed.DetachFromDisposeScope(), requires_grad: false);
        bias = biasToKeep is null ? null : new Parameter(biasToKeep.detach().clone().DetachFromDisposeScope(), requires_grad: false);
        RegisterComponents();
        _stateJson = BnbQuantStateJson.Pack(state).DetachFromDisposeScope();   // registered under bnb's dotted name only
        RegisterStateBuffers();
    }

    /// <summary>The quantisation state (absmax, code, block size, shape, double quantisation).</summary>
    public QuantState State { get; private set; }

    private readonly MergedWeight _merged = new();

    /// <inheritdoc />
    public bool KeepMergedWeightInFullPrecision { get => _merged.KeepFullPrecision; set => _merged.KeepFullPrecision = value; }

    /// <inheritdoc />
    public Device Device => weight.device;

    /// <summary>
    /// The weight [out, in] in <see cref="ComputeDtype"/>: the merged full-precision copy, else bnb's
    /// <c>dequantize_4bit(...).to(compute dtype)</c> — dequantised into the original dtype (<see cref="QuantState.Dtype"/>)
    /// first, then cast. Caller owns it.
    /// </summary>
    public Tensor GetWeight() => _merged.Get(ComputeDtype, () =>
    {
        using var scope = NewDisposeScope();
        return DequantizeWeight(State.Dtype).to_type(ComputeDtype).MoveToOuterDisposeScope();
    });

    /// <inheritdoc />
    public void SetWeight(Tensor value) => _merged.Set(value, nameof(Linear4bit), OutFeatures, InFeatures, State.Dtype, Requantize);

    private void Requantize(Tensor value)
    {
        var (packed, state) = FourBitCodec.Quantize(value.to_type(State.Dtype), State.Format, State.Blocksize, State.Nested is not null);
        using (no_grad()) weight = ReplaceWeight(packed);
        State.Dispose();
        State = state;
        _stateJson.Dispose();
        _stateJson = BnbQuantStateJson.Pack(state).DetachFromDisposeScope();
        RegisterStateBuffers();
    }

    /// <inheritdoc />
    public Linear ToLinear()
    {
        using var scope = NewDisposeScope();
        return MergedWeight.ToLinear(_merged.Full ?? DequantizeWeight(State.Dtype), bias, Device, State.Dtype);
    }

    /// <inheritdoc />
    public void CastBias(ScalarType dtype)
    {
        if (bias is null || bias.dtype == dtype) return;
        var cast = new Parameter(bias.detach().to_type(dtype).DetachFromDisposeScope(), requires_grad: bias.requires_grad);
        _internal_params["bias"] = cast;
        bias.Dispose();
        bias = cast;
    }

    /// <inheritdoc />
    public IQuantizedLinear CloneLayer()
    {
        var copy = FromBnbState(state_dict(), ComputeDtype);
        copy.KeepMergedWeightInFullPrecision = KeepMergedWeightInFullPrecision;
        return copy;
    }

    private Parameter ReplaceWeight(Tensor packed)
    {
        var fresh = new Parameter(packed.DetachFromDisposeScope(), requires_grad: false);
        _internal_params["weight"] = fresh;
        weight.Dispose();
        return fresh;
    }

    /// <inheritdoc />
    public ScalarType ComputeDtype { get; }
    /// <inheritdoc />
    public long InFeatures => State.Shape[1];
    /// <inheritdoc />
    public long OutFeatures => State.Shape[0];
    /// <inheritdoc />
    public Parameter? Bias => bias;

    /// <summary>Bytes of the packed weight, the quant state and the bias (what the layer really holds).</summary>
    public long StorageBytes =>
        parameters().Sum(p => p.numel() * p.ElementSize) + buffers().Sum(b => b.numel() * b.ElementSize);

    private static (Tensor, QuantState) Quantized(Tensor w, FourBitFormat format, int blocksize, bool doubleQuant) =>
        FourBitCodec.Quantize(w, format, blocksize, doubleQuant);

    /// <inheritdoc />
    public Tensor DequantizeWeight(ScalarType dtype) => FourBitCodec.Dequantize(weight, State, dtype);

    /// <summary>x [..., in] → [..., out] in x's dtype: linear(x in the compute dtype, dequantised W, bias) (bnb <c>matmul_4bit</c>).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inDtype = x.dtype;
        var w = GetWeight();                                                     // [out, in]
        var y = nn.functional.linear(x.to_type(ComputeDtype), w, bias?.to_type(ComputeDtype));
        return y.to_type(inDtype).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking) => throw QuantizedModuleMoves.DtypeCast(nameof(Linear4bit), dtype);

    /// <inheritdoc />
    protected override nn.Module _to(ScalarType dtype, bool non_blocking) => throw QuantizedModuleMoves.DtypeCast(nameof(Linear4bit), dtype);

    /// <inheritdoc />
    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        var device = new Device(deviceType, deviceIndex);
        weight = MoveParameter("weight", weight, device)!;
        bias = MoveParameter("bias", bias, device);
        State.MoveTo(device);
        _stateJson = QuantState.Move(_stateJson, device);
        RegisterStateBuffers();
        return this;
    }

    private Parameter? MoveParameter(string name, Parameter? p, Device device)
    {
        if (p is null || (p.device.type == device.type && p.device.index == device.index)) return p;
        var moved = new Parameter(p.detach().to(device).DetachFromDisposeScope(), requires_grad: p.requires_grad);
        _internal_params[name] = moved;
        p.Dispose();
        return moved;
    }

    private void RegisterStateBuffers()
    {
        foreach (var (name, t) in State.Tensors()) SetBuffer("weight." + name, t);
        SetBuffer("weight.quant_state.bitsandbytes__" + State.Format.Name, _stateJson);
    }

    private void SetBuffer(string name, Tensor t)
    {
        if (_internal_buffers.ContainsKey(name)) _internal_buffers[name] = (t, true);
        else register_buffer(name, t);
    }

    /// <summary>
    /// Builds a layer from bnb's serialised tensors (keys relative to the layer: <c>weight</c>, <c>weight.absmax</c>,
    /// <c>weight.quant_map</c>, optional <c>weight.nested_*</c>, <c>weight.quant_state.bitsandbytes__*</c>, optional
    /// <c>bias</c>). The tensors are copied. HF: <c>Params4bit.from_prequantized</c>.
    /// </summary>
    /// <exception cref="InvalidDataException">A key is missing or the packed JSON is malformed (named in the message).</exception>
    public static Linear4bit FromBnbState(IReadOnlyDictionary<string, Tensor> tensors, ScalarType computeDtype, string where = "Linear4bit")
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var stateKey = tensors.Keys.SingleOrDefault(k => k.StartsWith("weight.quant_state.bitsandbytes__", StringComparison.Ordinal))
            ?? throw new InvalidDataException($"{where}: no 'weight.quant_state.bitsandbytes__nf4|fp4' tensor among [{string.Join(", ", tensors.Keys)}].");
        Tensor Need(string k) => tensors.TryGetValue(k, out var t) ? t : throw new InvalidDataException($"{where}: missing '{k}'.");
        var state = BnbQuantStateJson.Unpack(Need(stateKey), k => tensors.TryGetValue(k, out var t) ? t.detach().clone() : null, $"{where}: '{stateKey}'");
        var packed = Need("weight").detach().clone();
        tensors.TryGetValue("bias", out var b);
        return new Linear4bit((packed, state), b, computeDtype);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _merged.Dispose();
            State.Dispose();
            _stateJson.Dispose();
        }
        base.Dispose(disposing);
    }
}
