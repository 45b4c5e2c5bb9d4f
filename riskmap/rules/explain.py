def explain_village(*a, **k):
    raise NotImplementedError
