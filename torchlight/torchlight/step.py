"""One optimisation step, as the trainer and the benchmark both take it."""
from torchlight import distributed
from torchlight.device import autocast


def train_step(model, criterion, optimizer, scaler, device, dtype, data, label, shared_params=()):
    """Autocast forward and criterion, zero_grad, scaled backward, the criterion's own parameters
    (`shared_params`, e.g. a fine-tuned text encoder) averaged over torchrun's ranks (DDP averages
    only the model's), optimizer step, scaler update. Returns (model output, losses)."""
    with autocast(device, dtype):
        output = model(data)
        losses = criterion(output, label)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses['loss']).backward()
    distributed.average_gradients(shared_params)
    scaler.step(optimizer)
    scaler.update()
    return output, losses
