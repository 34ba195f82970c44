# One image for s2mos on Google Cloud (docs/cloud.md):
#   * Dataflow worker image: --sdk_container_image=IMAGE --sdk_location=container (Beam's boot
#     ENTRYPOINT kept; the package is installed here, so nothing is staged at worker start);
#   * Flex Template launcher of build-dataset and predict-map (deploy/flex_main.py);
#   * Vertex AI training container (`s2mos train --vertex`: command python -m trainer.task).
# Beam and Python must be the same in the launcher, on the workers and where the job was built:
# the base tag is the apache-beam pin of requirements.lock and the Python of the venv (3.11).
# Build (cloudbuild.yaml does): docker build --build-arg S2MOS_IMAGE=IMAGE -t IMAGE .
FROM gcr.io/dataflow-templates-base/python311-template-launcher-base:latest AS launcher

FROM apache/beam_python3.11_sdk:2.77.0

# The Flex Template launcher binary, from Google's launcher base image of the same Python.
COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

WORKDIR /opt/s2mos

# Dependencies first (their layer is rebuilt only when the lock changes): the lock, plus
# TensorFlow's CUDA extra at the locked version (GPU workers and Vertex GPUs; CPU works too).
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock "tensorflow[and-cuda]==2.21.0"

# The package (and its tests: cloudbuild.yaml runs them in this image), without touching the
# pinned dependencies above.
COPY . ./
RUN pip install --no-cache-dir --no-deps .

ARG S2MOS_IMAGE=""
ENV S2MOS_IMAGE=${S2MOS_IMAGE} \
    FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/s2mos/deploy/flex_main.py

ENTRYPOINT ["/opt/apache/beam/boot"]
