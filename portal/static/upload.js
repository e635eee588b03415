// Progressive enhancement of the package upload form: sends it with XMLHttpRequest to show
// the upload's progress. Without this script the form posts as a plain multipart form.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var error = document.getElementById("upload-error");
  var button = form.querySelector("button[type=submit]");

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
    button.disabled = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) { return; }
      var percent = Math.round((e.loaded / e.total) * 100);
      bar.value = percent;
      status.textContent = percent < 100 ? "正在上传：" + percent + "%" : "上传完成，正在导入…";
    });
    xhr.addEventListener("load", function () {
      // Success is a redirect to the dataset's page, which XHR has followed.
      if (xhr.status === 200 && xhr.responseURL && xhr.responseURL.indexOf("/admin/datasets/upload") === -1) {
        window.location.assign(xhr.responseURL);
        return;
      }
      bar.hidden = true;
      status.textContent = "";
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var found = page.getElementById("upload-error") || page.querySelector("[role=alert]");
      showError(found && found.textContent.trim() ? found.textContent.trim() : "上传失败（HTTP " + xhr.status + "），未导入任何数据。");
    });
    xhr.addEventListener("error", function () { showError("网络错误，上传未完成，未导入任何数据。"); });
    error.hidden = true;
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    xhr.send(new FormData(form));
  });
})();
