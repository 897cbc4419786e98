import torch, steerlib.backbone as B
orig = B.load_backbone
def patched(name=None, **kw):
    bb = orig(name, **kw)
    with torch.no_grad():
        for n, p in bb.model.named_parameters():
            if p.dim() > 1: p.normal_(0, 0.02)
    return bb
B.load_backbone = patched
