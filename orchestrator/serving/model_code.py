"""The code MLflow runs to load a nightshift model (MLflow's "models from code": nothing is unpickled).

`mlflow.pyfunc.save_model(python_model=<this file>)` copies it into the
model folder; loading executes it with the folder's `code/` on sys.path.
"""

from mlflow.models import set_model

from nightshift.orchestrator.serving.pyfunc import NightshiftModel

set_model(NightshiftModel())
