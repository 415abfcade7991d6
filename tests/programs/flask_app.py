# A Flask application (Debian's python3-flask), served by gunicorn in the
# tests: `gunicorn -k gevent flask_app:app`.
from flask import Flask

app = Flask(__name__)


def greeting(name):
    return 'hello %s' % name


@app.route('/hello/<name>')
def hello(name):
    return greeting(name)
